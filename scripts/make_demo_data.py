#!/usr/bin/env python
"""Write the demo's SST-2 sample (`pseudo_kd_hf/demo_data/SST-2/`): movie-review phrases made from word lists.

Written for this project (no GLUE text is used): templates combine a subject with a positive or negative word,
through negation ("is not dull"), contrast ("..., but ...", "although ..., ...") and phrases that say the film tries
one thing and ends up another, so the label needs more than one word to decide. Some adjectives appear only in the
dev and test sets, so a model has to lean on what it learnt in pretraining, and 5% of the training labels are
flipped, as annotators err, so a regulariser has something to do (dev labels are clean). The files follow SST-2's
original layout (`sentence<TAB>label`; test: `index<TAB>sentence`, exactly the official 1821 rows, so the test
predictions form a valid leaderboard file). The output is deterministic: `python scripts/make_demo_data.py`
rewrites the shipped files byte for byte (a test checks it).
"""

from __future__ import annotations

import argparse
import random
import re
from collections.abc import Callable
from pathlib import Path

from pseudo_kd_hf.glue.tasks import TASKS

DEFAULT_OUTPUT = Path(__file__).resolve().parents[1] / "pseudo_kd_hf" / "demo_data"
SEED = 20240521
NUM_TRAIN, NUM_DEV = 400, 100
TRAIN_LABEL_NOISE = 0.05  # share of training labels flipped, as annotators err: regularisation has work to do
NUM_TEST = TASKS["sst2"].split_sizes["test"]  # the official size: the leaderboard accepts only complete files
NEGATIVE, POSITIVE = 0, 1  # SST-2's file labels, in the Hub's order (negative, positive)

SUBJECTS = tuple(
    "the film, this movie, the plot, the acting, the script, the soundtrack, the cast, the ending, "
    "the director 's latest, the dialogue, the pacing, the photography, the story, the lead performance, "
    "the humor, the second half, this comedy, this thriller, the romance, the sequel".split(", ")
)
NOUNS = tuple("film movie comedy drama thriller story picture debut sequel romance".split())
# Per polarity: (adjectives seen in training, adjectives held out for dev and test)
ADJECTIVES = {
    POSITIVE: (
        tuple(
            "charming gripping delightful moving witty smart heartfelt thrilling funny memorable sharp warm "
            "inventive tender lovely engaging".split()
        ),
        tuple("superb enchanting riveting wonderful touching brilliant".split()),
    ),
    NEGATIVE: (
        tuple(
            "dull tedious clumsy forgettable bland predictable lifeless messy shallow overlong flat tiresome silly "
            "incoherent cheap boring".split()
        ),
        tuple("dreary insufferable pointless awful sluggish lazy".split()),
    ),
}
ADVERBS = ("", "", "", "very ", "truly ", "rather ", "often ", "surprisingly ", "consistently ", "mostly ")
ENDINGS = ("", "", " .", " .", " !")


class Vocabulary:
    """Draws words for one split: training sees only the first adjective list of each polarity."""

    def __init__(self, rng: random.Random, held_out: bool) -> None:
        self.rng = rng
        self.adjectives = {polarity: seen + held if held_out else seen for polarity, (seen, held) in ADJECTIVES.items()}

    def adjective(self, polarity: int) -> str:
        return self.rng.choice(self.adjectives[polarity])

    def subject(self) -> str:
        return self.rng.choice(SUBJECTS)

    def clause(self, polarity: int) -> str:
        """A clause whose sentiment is `polarity`, sometimes through a negated adjective."""
        if self.rng.random() < 0.25:
            return f"{self.subject()} is not {self.adjective(1 - polarity)}"
        return f"{self.subject()} is {self.rng.choice(ADVERBS)}{self.adjective(polarity)}"


# Each template writes a phrase of the given sentiment.
Template = Callable[[Vocabulary, int], str]
TEMPLATES: tuple[Template, ...] = (
    lambda v, p: f"{v.subject()} is {v.rng.choice(ADVERBS)}{v.adjective(p)}",
    lambda v, p: f"{v.subject()} is not {v.adjective(1 - p)}",
    lambda v, p: f"{v.subject()} is never {v.adjective(1 - p)}",
    lambda v, p: f"a {v.adjective(p)} , {v.adjective(p)} {v.rng.choice(NOUNS)}",
    lambda v, p: f"hardly a {v.adjective(1 - p)} {v.rng.choice(NOUNS)}",
    lambda v, p: f"{v.clause(1 - p)} , but {v.clause(p)}",
    lambda v, p: f"although {v.clause(1 - p)} , {v.clause(p)}",
    lambda v, p: f"{v.clause(p)} and {v.clause(p)}",
    lambda v, p: f"{v.subject()} could not be more {v.adjective(p)}",
    lambda v, p: f"{v.subject()} tries to be {v.adjective(1 - p)} but ends up {v.adjective(p)}",
    lambda v, p: f"nobody will call {v.subject()} {v.adjective(1 - p)}",
    lambda v, p: f"what could have been {v.adjective(1 - p)} turns out {v.rng.choice(ADVERBS)}{v.adjective(p)}",
)


def with_articles(sentence: str) -> str:
    """'a' before a vowel becomes 'an' (every word list entry starting with a vowel is pronounced with one)."""
    return re.sub(r"\ba (?=[aeiou])", "an ", sentence)


def sample(rng: random.Random, count: int, held_out: bool, taken: set[str]) -> list[tuple[str, int]]:
    """`count` new (sentence, label) pairs with balanced labels, none of them in `taken` (which they join)."""
    vocabulary = Vocabulary(rng, held_out)
    labels = [POSITIVE, NEGATIVE] * (count // 2) + [POSITIVE] * (count % 2)
    rng.shuffle(labels)
    rows = []
    for label in labels:
        while True:
            sentence = with_articles(rng.choice(TEMPLATES)(vocabulary, label) + rng.choice(ENDINGS))
            if sentence not in taken:
                break
        taken.add(sentence)
        rows.append((sentence, label))
    return rows


def write_tsv(path: Path, header: str, rows: list[str]) -> None:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")


def make_demo_data(output_dir: Path) -> Path:
    """Write `output_dir/SST-2/{train,dev,test}.tsv` in SST-2's original layout; return the SST-2 folder."""
    rng = random.Random(SEED)
    taken: set[str] = set()
    train = sample(rng, NUM_TRAIN, held_out=False, taken=taken)
    for row in rng.sample(range(NUM_TRAIN), round(TRAIN_LABEL_NOISE * NUM_TRAIN)):
        sentence, label = train[row]
        train[row] = (sentence, 1 - label)
    dev = sample(rng, NUM_DEV, held_out=True, taken=taken)
    test = sample(rng, NUM_TEST, held_out=True, taken=taken)
    folder = output_dir / TASKS["sst2"].folder
    folder.mkdir(parents=True, exist_ok=True)
    write_tsv(folder / "train.tsv", "sentence\tlabel", [f"{sentence}\t{label}" for sentence, label in train])
    write_tsv(folder / "dev.tsv", "sentence\tlabel", [f"{sentence}\t{label}" for sentence, label in dev])
    write_tsv(
        folder / "test.tsv", "index\tsentence", [f"{index}\t{sentence}" for index, (sentence, _) in enumerate(test)]
    )
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output_dir", type=Path, default=DEFAULT_OUTPUT, help="Folder to hold SST-2/.")
    print(f"Wrote {make_demo_data(parser.parse_args().output_dir)}")


if __name__ == "__main__":
    main()
