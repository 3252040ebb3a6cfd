"""The report's views of STATUS (ablate.core.reports.status_report): a record's hardware cell."""

from __future__ import annotations

from ablate.core.outputs import provenance


def test_the_report_cell_names_the_numerics_and_the_gpus(monkeypatch):
    """The report's provenance page: a row made under MKL_CBWR says so beside its CPU; a GPU
    record (its GPUs as provenance writes them, names) names its GPUs."""
    from ablate.core.reports.status_report import hardware_summary

    monkeypatch.setenv("MKL_CBWR", "COMPATIBLE")
    hw = provenance.hardware()
    cell = hardware_summary(hw)
    assert hw["torch_cpu_capability"] in cell and "MKL_CBWR=COMPATIBLE" in cell
    gpu = {**hw, "gpus": ["NVIDIA H100 80GB HBM3"]}
    assert hardware_summary(gpu).endswith("; 1x NVIDIA H100 80GB HBM3")
