"""The pull-request report: what this branch changes in metrics, params and plots.

    python .ci/pr_report.py --base main --out report.md

Runs `dvc metrics diff`, `dvc params diff` (both as markdown) and `dvc plots diff --json`
against ``--base`` in the current DVC repository, renders each Vega-Lite plot to a PNG with
vl-convert (no browser, no network) beside the report, and writes one markdown file that
`cml comment create` posts on the pull request (.github/workflows/pr-report.yaml).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import vl_convert


def dvc(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "dvc", *args], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"dvc {' '.join(args)} failed:\n{result.stderr.strip()}")
    return result.stdout.strip()


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "plot"


def render_plots(base: str, folder: Path) -> list[tuple[str, Path]]:
    """Each Vega-Lite plot of `dvc plots diff <base> --json` as a PNG in ``folder``."""
    rendered = json.loads(dvc("plots", "diff", base, "--json") or "{}")
    folder.mkdir(parents=True, exist_ok=True)
    images = []
    for name, plots in rendered.get("data", {}).items():
        for plot in plots:
            if plot.get("type") != "vega":
                continue  # an image output (PNG) is already a picture: it is left out
            path = folder / f"{slug(name)}.png"
            path.write_bytes(vl_convert.vegalite_to_png(vl_spec=plot["content"], scale=1))
            images.append((name, path))
    return images


def check_revision(base: str) -> None:
    """DVC compares with a revision it cannot find as if it held nothing: refuse it first."""
    found = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{base}^{{commit}}"], capture_output=True
    )
    if found.returncode != 0:
        raise SystemExit(
            f"pr_report: --base {base} is not a commit of this repository "
            "(in CI, check out with fetch-depth: 0 so that the base branch is there)"
        )


def report(base: str, out: Path) -> str:
    check_revision(base)
    metrics = dvc("metrics", "diff", base, "--md") or "No metric changed."
    params = dvc("params", "diff", base, "--md") or "No param changed."
    images = render_plots(base, out.parent / f"{out.stem}_plots")
    lines = [
        f"# Pipeline report: this branch against `{base}`",
        "",
        "## Metrics",
        "",
        metrics,
        "",
        "## Params",
        "",
        params,
        "",
        "## Plots",
        "",
        *(f"![{name}](./{path.relative_to(out.parent).as_posix()})" for name, path in images),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="main", help="the git revision to compare with")
    parser.add_argument("--out", type=Path, default=Path("report.md"))
    args = parser.parse_args(argv)
    args.out.write_text(report(args.base, args.out))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
