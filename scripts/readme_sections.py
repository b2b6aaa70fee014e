"""Generated sections of README.md: text between `<!-- NAME:start -->` and `<!-- NAME:end -->` markers."""

from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def with_section(readme: str, name: str, content: str) -> str:
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    if start not in readme or end not in readme:
        raise ValueError(f"README.md needs the markers {start} and {end} around the generated {name}")
    head, rest = readme.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{content.strip()}\n{end}{tail}"


def write_section(name: str, content: str) -> None:
    README.write_text(with_section(README.read_text(), name, content))
