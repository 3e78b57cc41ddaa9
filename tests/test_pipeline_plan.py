"""The pipeline plan's profiles set only arguments that their steps take: a misspelt or stale
override would otherwise fail a long run late, or change nothing."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import lightning as L
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PLAN = yaml.safe_load((ROOT / "configs" / "pipeline.yaml").read_text())


def arguments(class_path: str) -> set[str]:
    """The keyword arguments a class's constructors along its MRO take."""
    module, name = class_path.rsplit(".", 1)
    cls = getattr(importlib.import_module(module), name)
    return {
        parameter
        for klass in cls.__mro__
        if "__init__" in vars(klass)
        for parameter in inspect.signature(klass.__init__).parameters
    }


@pytest.mark.parametrize("profile", sorted(PLAN["profiles"]))
def test_every_override_names_an_argument_of_its_step(profile: str) -> None:
    trainer = set(inspect.signature(L.Trainer.__init__).parameters)
    overrides = PLAN["profiles"][profile] or {}
    for dataset, steps in PLAN["configs"].items():
        for step, args in overrides.items():
            config = yaml.safe_load((ROOT / steps[step]).read_text())
            for arg in args:
                path = arg.removeprefix("--").split("=", 1)[0].split(".")
                if path[0] == "trainer":
                    taken = trainer
                else:
                    assert path[1] == "init_args", (dataset, step, arg)
                    taken = arguments(config[path[0]]["class_path"])
                assert path[-1] in taken, f"{profile}/{step} on {dataset}: {arg}"


def test_a_misspelt_override_is_caught(monkeypatch) -> None:
    monkeypatch.setitem(PLAN["profiles"], "typo", {"sequential": ["--model.init_args.dimm=64"]})
    with pytest.raises(AssertionError, match="dimm"):
        test_every_override_names_an_argument_of_its_step("typo")
