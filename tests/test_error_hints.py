"""Every hint in kdgan's messages names something that exists: the `kdgan COMMAND`s and --options
they mention are in the command-line parser, and the config keys they tell users to set
(``data.verify=false``, ``set train.grad_clip``) are in the config schema."""

import argparse
import ast
import dataclasses
import functools
import re
import typing
from pathlib import Path

import pytest

import kdgan
from kdgan.cli import parser
from kdgan.config import RunConfig
from kdgan.methods import METHODS

SOURCE = Path(kdgan.__file__).parent

# `kdgan COMMAND`, --option, and a dotted config key that a hint asks to set (KEY=... or "set KEY")
COMMAND = re.compile(r"`kdgan ([a-z][a-z-]*)|\bkdgan ([a-z][a-z-]*)(?= [A-Z]{2,}| --| cannot| reads)")
OPTION = re.compile(r"(?<![\w-])--([a-z][a-z-]*[a-z])")
KEY = re.compile(r"(?:\bset |--set |^|[\s(`'])((?:[a-z_]+\.)+[a-z_@0-9]+)(?==|`? *\(|` |$| or |, )")
TOP_LEVEL = {item.name for item in dataclasses.fields(RunConfig)}
FILE_SUFFIXES = {"pt", "yaml", "json", "jsonl", "npz", "npy", "csv", "txt", "png", "zip", "gz", "arff", "xml", "md"}


@functools.cache
def message_texts() -> list[tuple[str, str]]:
    """(where, text) for every string literal in the package: each constant, and each constant
    part of an f-string (a placeholder ends a part, so a key half-built from a variable is skipped)."""
    texts = []
    for path in sorted(SOURCE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
                      and node.body and isinstance(node.body[0], ast.Expr)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                texts.append((f"{path.relative_to(SOURCE)}:{node.lineno}", node.value))
    return texts


def subcommands() -> dict[str, argparse.ArgumentParser]:
    actions = [a for a in parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(actions[0].choices)


def cli_options() -> set[str]:
    options = set()
    for sub in subcommands().values():
        for action in sub._actions:
            options.update(o.removeprefix("--") for o in action.option_strings if o.startswith("--"))
    return options


def schema_fields(cls: type) -> dict[str, typing.Any]:
    return typing.get_type_hints(cls)


def key_exists(key: str) -> bool:
    """Whether ``key`` (e.g. data.verify, student.optimizer.lr, options.alpha) is in the schema."""
    head, *rest = key.split(".")
    if head == "options":  # any method's options
        return len(rest) == 1 and any(rest[0] in {f.name for f in dataclasses.fields(m.Options)}
                                      for m in METHODS.values())
    if head not in TOP_LEVEL:
        return False
    node: typing.Any = RunConfig
    for part in [head, *rest]:
        if part == "model" and node is not RunConfig:  # a network's options are the model's own
            return True
        hints = schema_fields(node)
        if part not in hints:
            return False
        node = next((a for a in typing.get_args(hints[part]) if dataclasses.is_dataclass(a)), hints[part])
    return True


def names(pattern: re.Pattern[str], text: str) -> list[str]:
    """What ``pattern`` finds in ``text`` (the first non-empty group of each match)."""
    return [next(g for g in match.groups() if g) for match in pattern.finditer(text)]


def hints(pattern: re.Pattern[str], keep: typing.Callable[[str], bool] = lambda name: True) -> list[tuple[str, str]]:
    return [(where, name) for where, text in message_texts() for name in names(pattern, text) if keep(name)]


def test_the_patterns_find_what_they_should():
    assert names(COMMAND, "run `kdgan methods`, kdgan train CONFIG; so kdgan evaluate cannot; kdgan writes") == [
        "methods", "train", "evaluate"]
    assert names(OPTION, "pass --data-dir or --out; not data--x") == ["data-dir", "out"]
    assert names(KEY, "set data.verify=false or train.grad_clip, or set student.optimizer.lr") == [
        "data.verify", "train.grad_clip", "student.optimizer.lr"]
    assert names(KEY, "train.npz holds x") == []
    assert len(hints(KEY)) >= 20
    assert key_exists("student.optimizer.game_lr") and key_exists("options.alpha") and key_exists("data.verify")
    assert key_exists("teacher.model.channels")
    assert not key_exists("data.verfy") and not key_exists("options.nope") and not key_exists("train.lr")


def test_messages_name_only_existing_commands():
    known = subcommands()
    found = hints(COMMAND)
    assert len(found) >= 4
    wrong = [(where, name) for where, name in found if name not in known]
    assert not wrong, f"hints name commands the CLI lacks (it has {sorted(known)}): {wrong}"


def test_messages_name_only_existing_options():
    known = cli_options() | {"nproc_per_node", "standalone"}  # torchrun's own options, in its hints
    found = hints(OPTION)
    assert len(found) >= 5
    wrong = [(where, name) for where, name in found if name not in known]
    assert not wrong, f"hints name options no subcommand has: {wrong}"


@pytest.mark.parametrize("head", sorted(TOP_LEVEL | {"options"}))
def test_messages_name_only_existing_config_keys(head):
    found = hints(KEY, lambda key: key.split(".")[0] == head and key.rsplit(".", 1)[1] not in FILE_SUFFIXES)
    wrong = [(where, key) for where, key in found if not key_exists(key)]
    assert not wrong, f"hints name config keys the schema lacks: {wrong}"
