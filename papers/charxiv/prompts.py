# ruff: noqa: E501  (prompt texts: data kept as the benchmark writes them, split only where it reads well)
"""CharXiv's prompt texts: the 19 descriptive response instructions, the 4 reasoning response instructions,
and the GPT-4o judge's grading prompts (prefixes, per-template overarching questions, rubrics with their
in-context examples).

These strings are the benchmark's data, reproduced from the official repository (princeton-nlp/CharXiv,
`constants.py` / `src/constants.py`, Apache-2.0; Wang et al. 2024, Sec. 3 and appendix) so that questions
and judge prompts built here are the ones the paper's numbers were measured with. Whitespace inside the
strings follows the original (bullets indented by four spaces). Typos of the original ("exlicitly",
"interger") are kept: a model or judge sees exactly these texts. The rubric examples are not valid JSON
(missing commas and quotes) in the original either; they are prompt text, never parsed.
"""

from __future__ import annotations

NA = "Not Applicable"

_TICK_X = (
    "including the case when x-axis is shared across multiple subplots. When the x-axis is present on both the "
    "top and bottom of the plot, answer based on the axis at the bottom. Ignore units or scales that are written "
    "separately from the tick, such as units and scales from the axis label or the corner of the plot."
)
_TICK_Y = (
    "including the case when y-axis is shared across multiple subplots. When the y-axis is present on both the "
    "left and right of the plot, based on the axis at the left. Ignore units or scales that are written "
    "separately from the tick, such as units and scales from the axis label or the corner of the plot."
)
_DIFF_NA = (
    "    * If the plot does not have an explicit {a}-axis tick value, or if the tick values are not numerical, "
    'or if the difference is not constant between all consecutive tick values, answer "Not Applicable".'
)
_LINES_NA = (
    '    * If the plot does not contain any lines or is not considered a line plot, answer "Not Applicable".'
)
_LEGEND_NA = (
    "    * If the plot does not have a legend or no legend is not considered relevant to this plot, answer "
    '"Not Applicable".'
)
_CBAR_NA = (
    "    * If the plot does not have an explicit colorbar-based continuous legend or the legend is not considered "
    'relevant to this subplot, answer "Not Applicable".'
)

# Descriptive questions: "{}" takes the subplot prefix ("For the current plot, " ...); 18 and 19 take none.
DESCRIPTIVE_RESP_INST: dict[int, str] = {
    1: "{}what is its title?\n"
    "    * Your final answer should be the most relevant title of the plot that is explicitly written.\n"
    "    * If the plot does not have an explicit title or contains only a letter, answer 'Not Applicable'.\n"
    "    ",
    2: "{}what is the label of the x-axis?\n"
    "    * Your final answer should be the label of the x-axis that is explicitly written, including the case "
    "when x-axis is shared across multiple subplots. When the x-axis is present on both the top and bottom of "
    "the plot, answer the label of the x-axis at the bottom.\n"
    "    * If the plot does not have an explicit x-axis label, answer 'Not Applicable'.\n"
    "    ",
    3: "{}what is the label of the y-axis?\n"
    "    * Your final answer should be the label of the y-axis that is explicitly written, including the case "
    "when y-axis is shared across multiple subplots. When the y-axis is present on both the left and right of "
    "the plot, answer the label of the y-axis at the left.\n"
    "    * If the plot does not have an explicit y-axis label, answer 'Not Applicable'.",
    4: "{}what is the leftmost labeled tick on the x-axis?\n"
    "    * Your final answer should be the tick value on the x-axis that is explicitly written, " + _TICK_X,
    5: "{}what is the rightmost labeled tick on the x-axis?\n"
    "    * Your final answer should be the tick value on the x-axis that is explicitly written, " + _TICK_X,
    6: "{}what is the spatially lowest labeled tick on the y-axis?\n"
    "    * Your final answer should be the tick value on the y-axis that is explicitly written, " + _TICK_Y,
    7: "{}what is the spatially highest labeled tick on the y-axis?\n"
    "    * Your final answer should be the tick value on the y-axis that is explicitly written, " + _TICK_Y,
    8: "{}what is difference between consecutive numerical tick values on the x-axis?\n"
    "    * Your final answer should be the difference between consecutive numerical tick values of the "
    "x-axis, " + _TICK_X + "\n" + _DIFF_NA.format(a="x"),
    9: "{}what is difference between consecutive numerical tick values on the y-axis?\n"
    "    * Your final answer should be the difference between consecutive numerical tick values of the "
    "y-axis, "
    + _TICK_Y.replace("based on the axis at the left", "answer based on the axis at the left")
    + "\n"
    + _DIFF_NA.format(a="y"),
    10: "{}how many lines are there?\n"
    "    * Your final answer should be the number of lines in the plot. Ignore grid lines, tick marks, and any "
    "vertical or horizontal auxiliary lines.\n" + _LINES_NA,
    11: "{}do any lines intersect?\n"
    '    * Your final answer should be "Yes" if any lines intersect, and "No" otherwise. Ignore grid '
    "lines, tick marks, and any vertical or horizontal auxiliary lines.\n" + _LINES_NA,
    12: "{}how many discrete labels are there in the legend?\n"
    "    * Your final answer should account for only labels relevant to the plot in the legend, even if the "
    "legend is located outside the plot. \n" + _LEGEND_NA,
    13: "{}what are the names of the labels in the legend?\n"
    "    * You should write down the labels from top to bottom, then from left to right and separate the "
    "labels with commas. Your final answer should account for only labels relevant to the plot in the "
    "legend, even if the legend is located outside the plot.\n" + _LEGEND_NA,
    14: "{}what is the difference between the maximum and minimum values of the tick labels on the continuous "
    "legend (i.e., colorbar)?\n"
    "    * You should remove the percentage sign (if any) in your answer.\n" + _CBAR_NA,
    15: "{}what is the maximum value of the tick labels on the continuous legend (i.e., colorbar)?\n"
    "    * You should remove the percentage sign (if any) in your answer. \n" + _CBAR_NA,
    16: "{}what is the general trend of data from left to right?\n"
    '    * Your final answer should be within a few words, such as "increases", "increases then '
    'stabilizes".',
    17: "{}What is the total number of explicitly labeled ticks across all axes?\n"
    "    * Your final answer should be the total number of explicitly labeled ticks across all axes, "
    "including the case when any axis is shared across multiple subplots.",
    18: "What is the layout of the subplots?\n"
    '    * Your final answer should follow "n by m" format, where n is the number of rows and m is the '
    "number of columns.\n"
    '    * If the plot does not contain subplots, answer "1 by 1".',
    19: "What is the number of subplots?\n"
    "    * Your final answer should be the total number of subplots in the plot.\n"
    '    * If the plot does not contain subplots, answer "1".',
}

# The judge's overarching question per template (DESCRIPTIVE_GRADING_QMAP).
DESCRIPTIVE_GRADING_QMAP: dict[int, str] = {
    1: "What is the title of the plot?",
    2: "What is the label of the x-axis?",
    3: "What is the label of the y-axis?",
    4: "What is the leftmost labeled tick on the x-axis?",
    5: "What is the rightmost labeled tick on the x-axis?",
    6: "What is the spatially lowest labeled tick on the y-axis?",
    7: "What is the spatially highest labeled tick on the y-axis?",
    8: "What is difference between consecutive numerical tick values on the x-axis?",
    9: "What is difference between consecutive numerical tick values on the y-axis?",
    10: "How many lines are there?",
    11: "Do any lines intersect?",
    12: "How many discrete labels are there in the legend?",
    13: "What are the names of the labels in the legend? (from top to bottom, then left to right)",
    14: "What is the difference between the maximum and minimum values of the tick labels on the continuous "
    "legend (i.e., colorbar)?",
    15: "What is the maximum value of the tick labels on the continuous legend (i.e., colorbar)?",
    16: "What is the general trend of data from left to right?",
    17: "What is the total number of explicitly labeled ticks across all axes?",
    18: "What is the layout of the subplots?",
    19: "What is the number of subplots?",
}

DESCRIPTIVE_GRADING_PREFIX = (
    "\nYou will be given <|NUM_TRIPLETS|> pairs of ground truth answers and model responses under an "
    "overarching question. You need to go through each of the pairs, extract the final answer from the model "
    "response, compare it with the ground truth answer, and then assign a binary score. Avoid providing "
    "explanations in your response. If there is no provided model response, please leave the extracted answer "
    "empty and give a score of 0. Your response must follow json formats with keys [<|JSON_KEYS|>] where the "
    "value for any `extract_answer` is your extracted answer and `score` is an interger in [0, 1] based on the "
    "following rules:\\n\n\nOverarching Question: <|OVERARCHING_QUESTION|>\n"
)

_NA_RULE = (
    '    * When ground truth answer is "Not Applicable", the response must express "Not Applicable" to '
    "receive a score of 1.\n"
)


def _examples(triples: list[tuple[str, str]], out: list[tuple[str, str]], end: str = "") -> str:
    blocks = "".join(
        f"    T{i}:\n    Response {i}: {r}\n    Ground Truth {i}: {g}\n\n"
        for i, (r, g) in enumerate(triples, 1)
    )
    body = "".join(
        f'        "extract_answer_T{i}": {e},\n        "score_T{i}": {s}\n' for i, (e, s) in enumerate(out, 1)
    )
    return f"\n    ### Example Start ###\n{blocks}    {{\n{body}    }}\n    ### Example End ###{end}\n"


# Rubric + in-context example per grading family (DESCRIPTIVE_GRADING_ICL); the example JSON is, as in the
# original, not valid JSON.
DESCRIPTIVE_GRADING_ICL: dict[str, str] = {
    "title": "\nRubric: \n"
    "    * Give a score of 1 if and only if the extracted answer and the ground truth answer are referring to the "
    "same term. It's acceptable to have different grammar or form (e.g., α and alpha; $R^2_{t,h,v,m}$ and "
    "R^2_t,h,v,m). It's acceptable to omit letter prefixes (e.g., (a) Increment over time and Increment over "
    "time).\n"
    "    * Give a score of 0 if any term in the extracted answer is different from the ground truth answer.\n"
    + _NA_RULE
    + _examples(
        [
            (
                'The title of the plot is "The number of students in each grade".',
                "The variance of students in each grade",
            ),
            ("There is no title.", "Not Applicable"),
            ("A_v^t", "A^t_v"),
        ],
        [('"The number of students in each grade"', "0"), ('"Not Applicable"', "1"), ('"A_v^t"', "1")],
    ),
    "ocr": "\nRubric: \n"
    "    * Give a score of 1 if and only if the extracted answer and the ground truth answer are referring to the "
    "same term. It's acceptable to have equivalent grammar or form (e.g., α and alpha; $R^2_{t,h,v,m}$ and "
    "R^2_t,h,v,m). If the ground truth is a number, the extracted answer should be the number with the exact "
    "same value.\n"
    "    * Give a score of 0 if any term in the extracted answer is different from the ground truth answer, or "
    "if the extracted number is different in value from the ground truth number.\n"
    + _NA_RULE
    + _examples(
        [
            ("The answer is 1.0", "1.00"),
            ("By manually inspecting the plot, the final answer should be 0.", "Not Applicable"),
            ("A_v^t", "A^t_v"),
        ],
        [("1.0", "1"), ("0", "0"), ('"A_v^t"', "1")],
    ),
    "quant": "\nRubric:\n"
    "    * Give a score of 1 if and only if the extracted answer and the ground truth answer are numbers with the "
    "exact same value.\n"
    "    * Give a score of 0 if the extracted answer is different in value from the ground truth answer.\n"
    + _NA_RULE
    + _examples([("5", "6"), ("0", "Not Applicable"), ("4", "4")], [("5", "0"), ("0", "0"), ("4", "1")]),
    "bool": "\nRubric:\n"
    "    * Give a score of 1 if and only if the extracted answer and the ground truth answer are the same.\n"
    "    * Give a score of 0 if the extracted answer and the ground truth answer are different.\n"
    + _NA_RULE
    + _examples(
        [
            ("No, there are no intersections.", "no"),
            ("No, all the lines are parallel.", "Yes"),
            ("There are no lines in the plot.", "Not Applicable"),
        ],
        [('"No"', "1"), ('"No"', "0"), ('"Not Applicable"', "1")],
    ),
    "enum": "\nRubric:\n"
    "    * Give a score of 1 if and only if the extracted answer and the ground truth answer are referring to the "
    "same term. It's acceptable to have equivalent grammar or form (e.g., α and alpha; $R^2_{t,h,v,m}$ and "
    "R^2_t,h,v,m). The order of the terms must be the same.\n"
    "    * Give a score of 0 if any term in the extracted answer is different from the ground truth answer, or "
    "if the order of the terms is different.\n"
    + _NA_RULE
    + _examples(
        [
            ("Here are the names of the labels: A, B, C", "B, A, C"),
            ("The labels are T56, B33.", "T56,B33,A12"),
            ("\\alpha, \\beta, \\gamma^t_v", "α, β, γ_v^t"),
        ],
        [('"A, B, C"', "0"), ('"T56, B33"', "0"), ('"\\alpha, \\beta, \\gamma^t_v"', "1")],
    ),
    "trend": "\nRubric:\n"
    "    * Give a score of 1 if and only if the extracted answer and the ground truth answer share the same "
    "general trend.\n"
    "    * Give a score of 0 if the extracted answer and the ground truth answer are different in trend "
    "expression.\n"
    + _examples(
        [
            ("there is an increase in the data from left to right", "Decreases"),
            ("the curves move up and stay constant", "Increases then stabilizes"),
            ("Decreases", "Decreases then increases"),
        ],
        [('"Increases"', "0"), ('"Move up and stay constant"', "1"), ('"Decreases"', "0")],
    ),
    "layout": "\nRubric:\n"
    "    * Give a score of 1 if and only if the extracted answer and the ground truth answer are the same in "
    "terms of the number of rows and columns (e.g., n by m).\n"
    "    * Give a score of 0 if the extracted answer is different from the ground truth answer.\n"
    + _examples(
        [
            ("2 by 3", "3 by 2"),
            ("the layout is 1 by 1", "1 by 1"),
            ("there are two rows and three columns", "2 by 3"),
        ],
        [('"2 by 3"', "0"), ('"1 by 1"', "1"), ('"2 by 3"', "1")],
    ),
}

# The rubric family of each template (descriptive_utils.get_rubric).
RUBRIC_OF_QID: dict[int, str] = {
    1: "title",
    2: "ocr",
    3: "ocr",
    4: "ocr",
    5: "ocr",
    6: "ocr",
    7: "ocr",
    8: "quant",
    9: "quant",
    10: "quant",
    11: "bool",
    12: "quant",
    13: "enum",
    14: "quant",
    15: "quant",
    16: "trend",
    17: "quant",
    18: "layout",
    19: "quant",
}

REASONING_RESP_INST: dict[int, str] = {
    1: "{}\n"
    "    * Your final answer must be grounded to some text that is explicitly written and relevant to the "
    "question in the chart.\n"
    "    * If you need to answer multiple terms, separate them with commas.\n"
    "    * Unless specified in the question (such as answering with a letter), you are required to answer the "
    "full names of subplots and/or labels by default.\n    ",
    2: "{}\n"
    "    * If there are options in the question, your final answer must conform to one of the options.\n"
    "    * If there are additional instructions in the question, follow them accordingly.\n"
    "    * If there are neither options nor additional instructions, you are allowed to respond with a short "
    "phrase only.\n    ",
    3: "{}\n"
    "    * Your final answer must be grounded to a number that is exlicitly written and relevant to the "
    "question in the chart, even if it's an approximate value.\n"
    "    * You are allowed to extract numbers within some text when needed.\n    ",
    4: "{}\n    {}\n    ",
}

REASONING_GRADING_PREFIX = (
    "\nYou will be given a question, an ground truth answer and a model response. You need to extract the final "
    "answer from the model response, compare it with the ground truth answer, and then assign a binary score. "
    "Avoid providing explanations in your response. If there is no provided model response, please leave the "
    "extracted answer empty and give a score of 0. \n\nYour response must follow json formats with keys "
    "[extract_answer, score] where the value of the score is an interger in [0, 1]. You must follow the scoring "
    "rules:\\n"
)

_YOUR_TURN = (
    "    ### Your Turn ###\n    * Question: <|question|>\n    * Ground Truth: <|ground_truth|>\n"
    "    * Response: <|response|>\n\n    "
)


def _reasoning_example(k: int, question: str, truth: str, response: str, extracted: str, score: int) -> str:
    return (
        f"    ### Example {k} Starts ###\n    * Question: {question}\n    * Ground Truth: {truth}\n"
        f'    * Response: {response}\n\n    {{\n        "extracted_answer": "{extracted}",\n'
        f'        "score": {score}\n    }}\n    ### Example {k} Ends ###\n\n'
    )


_NUMBER_RULES = (
    "\n    ### Rules ###\n"
    "    * Give a score of 1 if and only if the two numbers are exactly equal in values. It's acceptable to have "
    "different notations (e.g., 0.01 and 10^-2; 1500 and 1.5e3).\n"
    "    * Give a score of 0 if the two numbers are different in values.\n\n"
    + _reasoning_example(
        1,
        "What is the value of the red curve at t=10?",
        "0.01",
        "The value of the red curve at t=10 is 0.012.",
        "0.012",
        0,
    )
    + _reasoning_example(
        2,
        "What is the value of the blue curve at t=50?",
        "1500",
        "The value of the blue curve at t=50 is 1.5e3.",
        "1.5e3",
        1,
    )
    + _YOUR_TURN
)

REASONING_GRADING_INST: dict[int, str] = {
    1: "\n    ### Rules ###\n"
    "    * Give a score of 1 if and only if the final answer and the ground truth answer are referring to the "
    "same term. It's acceptable to have different grammar or form (e.g., α and alpha; $R^2_{t,h,v,m}$ and "
    "R^2_t,h,v,m). It's also acceptable to have different orders of the terms when question asks for "
    "multiple terms.\n"
    "    * Give a score of 0 if any term (e.g., ACC+ and ACC; P-101 and P=101) is different between the final "
    "answer and the ground truth.\n\n"
    + _reasoning_example(
        1,
        "What is the name of the curve that intersects y=\\lambda exactly three times?",
        "P56962",
        "There is only one curve that intersects y=\\lambda exactly three times. "
        "The name of the curve is written as P55762.",
        "P55762",
        0,
    )
    + "\n"
    + _reasoning_example(
        2,
        "What is the letter of the subplot where all bars are above 35?",
        "(b)",
        "The letter of the subplot where all bars are above 35 is b.",
        "b",
        1,
    )
    + _YOUR_TURN,
    2: "\n    ### Rules ###\n"
    "    * If there are predefined options in the question:\n"
    "        * Give a score of 1 if the final answer matches the ground truth answer exactly.\n"
    "        * Give a score of 0 if the final answer does not match the ground truth answer.\n"
    "    * If there are no predefined options in the question:\n"
    "        * Give a score of 1 if the final answer shares the same semantic meaning with the ground truth "
    'answer (e.g., "increasing then decreasing" and "moving up then down"; "converge" and "move closer '
    'together").\n'
    "        * Give a score of 0 if the final answer shares different semantic meanings from the ground truth "
    'answer (e.g., "increasing then decreasing" and "remain constant"; "converge" and "diverge").\n\n'
    + _reasoning_example(
        1,
        "What is the trend of the red curve between t=10 and t=25?",
        "increasing then decreasing",
        "The red curve is increasing between t=10 and t=25.",
        "increasing",
        0,
    )
    + _reasoning_example(
        2,
        "What is the interval where the blue curve achieves the maximum value among "
        "[0, 50], [50, 100], [100, 150], and [150, 200]?",
        "[50, 100]",
        "The interval where the blue curve achieves the maximum value is [50, 100].",
        "[50, 100]",
        1,
    )
    + _YOUR_TURN,
    3: _NUMBER_RULES,
    4: _NUMBER_RULES,
}

ANSWER_TYPES = {1: "Text-in-Chart", 2: "Text-in-General", 3: "Number-in-Chart", 4: "Number-in-General"}
QA_SOURCES = {1: "GPT-Sourced", 2: "GPT-Inspired", 3: "Completely Human"}

# Reporting category of each template (score_utils.QNUM2QTYPE): note 8 and 9 count as Enumeration and 17 as
# Compositionality, as the leaderboard's columns do.
CATEGORY_OF_QID: dict[int, str] = {
    **{q: "Information Extraction" for q in range(1, 8)},
    **{q: "Enumeration" for q in (8, 9, 13, 14, 15)},
    **{q: "Pattern Recognition" for q in (11, 16, 18)},
    **{q: "Counting" for q in (10, 12, 19)},
    17: "Compositionality",
}
CATEGORIES = ("Information Extraction", "Enumeration", "Pattern Recognition", "Counting", "Compositionality")
SUBJECTS = {
    "cs": "Computer Science",
    "econ": "Economics",
    "eess": "Electrical Engineering and Systems Science",
    "math": "Mathematics",
    "physics": "Physics",
    "q-bio": "Quantitative Biology",
    "q-fin": "Quantitative Finance",
    "stat": "Statistics",
}
YEARS = {"20": "2020", "21": "2021", "22": "2022", "23": "2023"}
# Templates whose ground truth may be "Not Applicable" (NA counts of the official validation data: 1000 of 4000 answers, none on 4-7 and 16-19).
NA_ALLOWED = frozenset({1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 15})
