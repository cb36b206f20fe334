"""MkDocs hook: the CLI reference page, rendered from brushwork's own argparse parsers at
build time, so it says exactly what `brushwork COMMAND --help` says and cannot drift.

The page `reference/cli.md` does not exist on disk; this hook adds it to the site's files.
When the parser moves, only PARSER changes.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

PARSER = "brushwork.cli:build_parser"  # the function that builds the `brushwork` parser
PAGE = "reference/cli.md"
WIDTH = "100"  # columns for argparse's usage lines


def build_parser(root: str) -> argparse.ArgumentParser:
    """The parser of the checkout the site is built from (not of an older installed copy)."""
    if root not in sys.path:
        sys.path.insert(0, root)
    module, function = PARSER.split(":")
    return getattr(importlib.import_module(module), function)()


def subcommands(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:
    """The subcommands (`.choices`, in the order `brushwork --help` lists them)."""
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|").replace("<", "&lt;")


def flag_names(action: argparse.Action) -> str:
    """`-s, --style STYLE [STYLE ...]` for an option, `content` for a positional."""
    formatter = argparse.HelpFormatter("brushwork")
    if not action.option_strings:
        return f"`{formatter._metavar_formatter(action, action.dest)(1)[0]}`"
    metavar = "" if action.nargs == 0 else " " + formatter._format_args(action, action.dest.upper())
    return f"`{', '.join(action.option_strings)}{metavar}`"


def description(action: argparse.Action, formatter: argparse.HelpFormatter) -> str:
    """The help text, saying "required" or the default where the help itself does not."""
    text = formatter._expand_help(action) if action.help else ""
    if action.required:
        return f"required; {text}" if text else "required"
    value = action.default
    if value in (None, False, argparse.SUPPRESS) or action.nargs == 0 or "default" in text:
        return text
    shown = " ".join(map(str, value)) if isinstance(value, (list, tuple)) else value
    return f"{text} (default: {shown})"


def arguments_table(parser: argparse.ArgumentParser) -> list[str]:
    """One row per argument, in the parser's order (--help itself left out)."""
    rows = ["| argument | what it does |", "| --- | --- |"]
    formatter = parser._get_formatter()
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction) or action.help == argparse.SUPPRESS:
            continue
        rows.append(f"| {cell(flag_names(action))} | {cell(description(action, formatter))} |")
    return rows


def command_section(name: str, parser: argparse.ArgumentParser) -> list[str]:
    """A subcommand's heading, usage and arguments."""
    lines = [f"## `brushwork {name}`", ""]
    if parser.description:
        lines += [parser.description, ""]
    lines += ["```text", parser.format_usage().strip(), "```", ""]
    return lines + arguments_table(parser) + [""]


def render(root: str) -> str:
    """The whole page: `brushwork --help`, a table of the commands, then each command."""
    os.environ["COLUMNS"] = WIDTH
    parser = build_parser(root)
    commands = subcommands(parser)
    summaries = {choice.dest: choice.help or "" for choice in commands._choices_actions}
    lines = [
        "# Command line",
        "",
        "Generated from brushwork's argument parsers when the site is built: it is what",
        "`brushwork COMMAND --help` prints, as tables.",
        "",
        "```text",
        parser.format_help().strip(),
        "```",
        "",
        "| command | what it does |",
        "| --- | --- |",
        *(f"| [`{name}`](#brushwork-{name}) | {cell(summaries.get(name, ''))} |" for name in commands.choices),
        "",
    ]
    for name, sub in commands.choices.items():
        lines += command_section(name, sub)
    return "\n".join(lines)


def on_files(files: Files, config: MkDocsConfig) -> Files:
    root = str(Path(config.config_file_path).resolve().parent)
    files.append(File.generated(config, PAGE, content=render(root)))
    return files
