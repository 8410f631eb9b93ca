"""`fleet docs`: write docs/roles/<role>.md for every role, or check they are current."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fleet.docs.roles import load_role, problems, render

REPO = Path(__file__).resolve().parents[3]


def role_dirs(repo: Path) -> list[Path]:
    return sorted(p for p in (repo / "roles").iterdir() if (p / "meta" / "argument_specs.yml").exists())


def stale_pages(repo: Path) -> list[str]:
    """Pages that differ from what the roles generate (or are missing, or orphaned)."""
    stale = []
    expected = {f"{d.name}.md": render(load_role(d)) for d in role_dirs(repo)}
    docs_dir = repo / "docs" / "roles"
    for name, text in expected.items():
        page = docs_dir / name
        if not page.exists() or page.read_text() != text:
            stale.append(str(page.relative_to(repo)))
    if docs_dir.exists():
        stale += [str(p.relative_to(repo)) for p in docs_dir.glob("*.md") if p.name not in expected]
    return stale


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("docs", help="write docs/roles/ from the roles (or --check them)", description=__doc__)
    parser.add_argument("--check", action="store_true", help="only report pages that are out of date")
    parser.add_argument("--repo", type=Path, default=REPO, help="repository root")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    found = [msg for d in role_dirs(args.repo) for msg in problems(d)]
    if found:
        print("\n".join(found), file=sys.stderr)
        return 1
    if args.check:
        stale = stale_pages(args.repo)
        if stale:
            print("out of date (run fleet docs): " + ", ".join(stale), file=sys.stderr)
            return 1
        return 0
    docs_dir = args.repo / "docs" / "roles"
    docs_dir.mkdir(parents=True, exist_ok=True)
    for d in role_dirs(args.repo):
        (docs_dir / f"{d.name}.md").write_text(render(load_role(d)))
    for page in docs_dir.glob("*.md"):
        if not (args.repo / "roles" / page.stem / "meta" / "argument_specs.yml").exists():
            page.unlink()
    return 0
