"""Write the small real-data subsets committed under samples/ from the public datasets.

Usage: python scripts/make_samples.py ../shared/data
SST-2 (GLUE): a seeded random 8,000 of the 67,349 train sentences, and the full 872-sentence dev set.
"""

import gzip
import json
import random
import sys
from pathlib import Path


def write(rows, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.GzipFile(path, "wb", mtime=0) as raw:
        for row in rows:
            raw.write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))


def load(path: Path):
    return [json.loads(line) for line in gzip.open(path, "rt", encoding="utf-8")]


def main(data_dir: str) -> None:
    data = Path(data_dir)
    keep = ("idx", "text", "label")
    train = load(data / "sst2" / "train.jsonl.gz")
    subset = random.Random(0).sample(train, 8000)
    write([{k: r[k] for k in keep} for r in subset], Path("samples/sst2/train.jsonl.gz"))
    dev = load(data / "sst2" / "validation.jsonl.gz")
    write([{k: r[k] for k in keep} for r in dev], Path("samples/sst2/validation.jsonl.gz"))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data")
