"""The ten papers of the companion; those without a package yet are shown as planned."""

from common.experiment import Paper

PLANNED: tuple[Paper, ...] = (
    Paper("meco", "Metadata Conditioning Accelerates Language Model Pre-training",
          "Gao, Wettig, He, Dong, Malladi, Chen", "ICML 2025", "2501.01956", status="planned"),
    Paper("topic_unlearning", "Provable unlearning in topic modeling and downstream tasks",
          "Wei, Malladi, Arora, Sanyal", "ICLR 2025", "2411.12600", status="planned"),
    Paper("ado", "Adaptive Data Optimization: Dynamic Sample Selection with Scaling Laws",
          "Jiang, Zhou, Feng, Malladi, Kolter", "ICLR 2025", "2410.11820", status="planned"),
    Paper("likelihood_displacement",
          "Unintentional Unalignment: Likelihood Displacement in Direct Preference Optimization",
          "Razin, Malladi, Bhaskar, Chen, Arora, Hanin", "ICLR 2025", "2410.08847", status="planned"),
    Paper("progressive_distillation", "Progressive distillation induces an implicit curriculum",
          "Panigrahi, Liu, Malladi, Risteski, Goel", "ICLR 2025 (oral)", "2410.05464", status="planned"),
    Paper("muse", "MUSE: Machine Unlearning Six-Way Evaluation for Language Models",
          "Shi, Lee, Huang, Malladi, Zhao, Holtzman, Liu, Zettlemoyer, Smith, Zhang", "ICLR 2025", "2407.06460", status="planned"),
    Paper("charxiv", "CharXiv: Charting Gaps in Realistic Chart Understanding in Multimodal LLMs",
          "Wang, Xia, He, Chen, Liu, Zhu, Liang, Wu, Liu, Malladi, Chevalier, Arora, Chen", "NeurIPS 2024 (D&B)", "2406.18521", status="planned"),
    Paper("ranking_accuracy", "Preference Learning Algorithms Do Not Learn Preference Rankings",
          "Chen, Malladi, Zhang, Chen, Zhang, Ranganath, Cho", "NeurIPS 2024", "2405.19534", status="planned"),
    Paper("less", "LESS: Selecting Influential Data for Targeted Instruction Tuning",
          "Xia, Malladi, Gururangan, Arora, Chen", "ICML 2024", "2402.04333", status="planned"),
    Paper("momentum", "The Marginal Value of Momentum for Small Learning Rate SGD",
          "Wang, Malladi, Wang, Lyu, Li", "ICLR 2024", "2307.15196", status="planned"),
)
