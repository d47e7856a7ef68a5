"""The two install paths (pip, conda) must install the same pinned packages."""

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pins(requirements):
    return {line.split("==")[0].strip().lower(): line.split("==")[1].strip() for line in requirements}


def test_environment_yml_and_pyproject_pin_the_same_packages():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pip_side = _pins(project["dependencies"] + project["optional-dependencies"]["test"])
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert environment["channels"][0] == "conda-forge"
    assert "defaults" not in environment["channels"]
    assert "prefix" not in environment
    assert environment["name"] == "gradcam-course"
    pip_section = next(item["pip"] for item in environment["dependencies"] if isinstance(item, dict))
    conda_side = _pins(line for line in pip_section if "==" in line)
    assert conda_side == pip_side
    assert "--editable ." in pip_section


def test_readme_names_the_conda_environment():
    assert "conda activate gradcam-course" in (ROOT / "README.md").read_text()


def test_torch_and_torchvision_are_the_known_good_pair():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = _pins(project["dependencies"])
    assert (pins["torch"], pins["torchvision"]) == ("2.14.1", "0.29.1")
