"""A test split carved from MedPix 2.0's train split, grouped by clinical case.

Run: python experiments/medpix_split.py medpix2/captions.csv captions_carved.csv
Expect: train 1,462, val 197, test 191 images (the development copy's 1,653 train images,
12% of its cases moved to test with seed 0; MedPix's own test split stays aside).

MedPix 2.0's `val` (its dev split) chooses settings; the numbers we report are on this carved
test, whose cases appear in no other split (several images of one case share a caption, so a
split by image would leak captions). The output is the same CSV with `split` rewritten.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

TEST_SHARE = 0.12  # of the train split's cases


def carve(table: pd.DataFrame, seed: int = 0, share: float = TEST_SHARE) -> pd.DataFrame:
    """``table`` with a seeded ``share`` of its train cases moved to ``test``."""
    cases = np.array(sorted(table.loc[table.split == "train", "case"].unique()))
    chosen = np.random.default_rng(seed).choice(cases, round(share * len(cases)), replace=False)
    out = table.copy()
    out.loc[(out.split == "train") & out.case.isin(set(chosen)), "split"] = "test"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("captions", help="MedPix 2.0 captions.csv (with split and case columns)")
    parser.add_argument("out", help="where to write the CSV with the carved test split")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    table = carve(pd.read_csv(args.captions), args.seed)
    table.to_csv(args.out, index=False)
    print(table.split.value_counts().to_string())


if __name__ == "__main__":
    main()
