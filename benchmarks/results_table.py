"""Turn the JSON of ``benchmarks/latent_quality.py`` into the Markdown table of ``benchmarks/RESULTS.md``.

    python benchmarks/results_table.py runs/sweep1.json runs/sweep2.json > table.md
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

COLUMNS = ("variant", "epochs", "train s", "img/s", "full MSE", "latent-only MSE", "PCA-8 MSE", "latent / PCA-8",
           "latent SSIM", "PCA-8 SSIM", "latent MS-SSIM", "PCA-8 MS-SSIM", "eff. dim", "min / max influence")


def row(entry: dict) -> list[str]:
    """One table row from one ``results`` entry of latent_quality.py."""
    r = entry["rows"]
    name = Path(entry.get("recipe") or entry.get("checkpoint")).stem
    if name in ("best", "last"):
        name = Path(entry["checkpoint"]).parent.name
    return [name, str(entry.get("epochs", "")), f"{entry['train_seconds']:.0f}" if "train_seconds" in entry else "",
            f"{entry['train_images_per_s']:.1f}" if "train_images_per_s" in entry else "",
            f"{r['full']['mse']:.3g}", f"{r['latent_only']['mse']:.3g}", f"{r['pca']['mse']:.3g}",
            f"**{entry['latent_vs_pca_mse']:.2f}**", f"{r['latent_only']['ssim']:.3f}", f"{r['pca']['ssim']:.3f}",
            f"{r['latent_only']['ms_ssim']:.3f}", f"{r['pca']['ms_ssim']:.3f}", f"{entry['effective_dim']:.2f}",
            f"{entry['influence_min_over_max']:.2f}"]


def table(entries: list[dict]) -> str:
    """Markdown table, one row per entry, in the given order."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row(e)) + " |" for e in entries]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("json", nargs="+", help="outputs of latent_quality.py")
    args = p.parse_args(argv)
    entries = []
    for path in args.json:
        try:
            entries += json.loads(Path(path).read_text())["results"]
        except (OSError, ValueError, KeyError) as exc:
            p.error(f"{path}: not a latent_quality.py output ({exc})")
    print(table(entries))
    return 0


if __name__ == "__main__":
    sys.exit(main())
