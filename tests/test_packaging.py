"""The package's metadata and the Makefile's install steps."""

import subprocess
from importlib.metadata import metadata

from .harness import ROOT


def test_the_license_file_is_mit_and_the_package_metadata_names_it():
    with open(f"{ROOT}/LICENSE", encoding="utf-8") as handle:
        assert handle.read().startswith("MIT License\n")
    meta = metadata("emailsvc")
    assert meta["License"] == "MIT"
    assert "License :: OSI Approved :: MIT License" in meta.get_all("Classifier")


def dry_run(target):
    """The commands ``make TARGET`` would run in a fresh checkout (nothing is run)."""
    result = subprocess.run(
        ["make", "-n", "-B", target, "VENV=/nonexistent-venv"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


def test_make_run_installs_the_package_alone_and_make_test_adds_the_testing_and_pdf_extras():
    run = dry_run("run")
    assert "pip install --quiet -e .\n" in run and "[testing" not in run
    assert 'pip install --quiet -e ".[testing,pdf]"' in dry_run("test")


def test_the_pdf_extra_is_weasyprint_and_templates_ship_with_the_package():
    meta = metadata("emailsvc")
    assert any(
        r.startswith("weasyprint") and 'extra == "pdf"' in r for r in meta.get_all("Requires-Dist")
    )
    with open(f"{ROOT}/setup.py", encoding="utf-8") as handle:
        assert '"templates/*.pt"' in handle.read()
