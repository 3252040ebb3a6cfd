"""ablate.upstream.smk: each patch of Snakemake's report, checked against the pinned Snakemake
(9.27.1). A failure here means the pinned version changed what the patch relies on (or fixed
what it works around): adapt or drop the patch in src/ablate/upstream/smk.py."""

from __future__ import annotations

import inspect
from pathlib import Path

from ablate.upstream import smk


def test_reporter_calls_its_module_rulegraph_spec():
    """Touch 1: the reporter calls ``rulegraph_spec`` by its module's name, so replacing the
    module attribute replaces the graph; after the patch it is ours."""
    import snakemake.report.html_reporter as html_reporter

    from ablate.core.reports import report_graph

    render = inspect.getsource(html_reporter)
    assert "from snakemake.report.rulegraph_spec import rulegraph_spec" in render
    assert "rulegraph_spec(self.dag)" in render
    smk.patch_report()
    assert html_reporter.rulegraph_spec is report_graph.rulegraph_spec


def test_snakemakes_embeddedimage_links_the_file(tmp_path, monkeypatch):
    """Touch 2: Snakemake's own directive links the file (its mixin comes second in its bases);
    after the patch the page embeds it."""
    from docutils.core import publish_parts
    from docutils.parsers.rst import directives
    from snakemake.report import EmbeddedImage

    monkeypatch.chdir(tmp_path)
    Path("scores.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    directives.register_directive("embeddedimage", EmbeddedImage)
    stock = publish_parts(".. embeddedimage:: scores.png\n", writer_name="html")["html_body"]
    assert 'src="scores.png"' in stock and "data:image" not in stock
    smk.patch_report()
    ours = publish_parts(".. embeddedimage:: scores.png\n", writer_name="html")["html_body"]
    assert 'src="data:image/png' in ours


def test_job_block_lines_come_from_format_job_info():
    """The logger plugin's touch 1 (src/snakemake_logger_plugin_ablate): Snakemake's
    ``format_job_info`` joins the lines its ``_format_job_info`` returns, so the plugin's override
    of the latter cuts every line of a job's block."""
    from snakemake.logging import DefaultFormatter

    assert "self._format_job_info(msg)" in inspect.getsource(DefaultFormatter.format_job_info)
    assert list(inspect.signature(DefaultFormatter._format_job_info).parameters) == ["self", "msg"]


def test_the_delete_commands_call_the_workflows_delete_output():
    """Touch 3: the command line's --delete-all-output and --delete-temp-output call
    ``DAGApi.delete_output``, which calls the workflow's ``delete_output`` once the Snakefile is
    read: wrapped on the instance, the guard runs around the deletion, with its dry-run flag."""
    from contextlib import contextmanager

    import snakemake.api
    import snakemake.cli

    cli = inspect.getsource(snakemake.cli)
    assert "dag_api.delete_output(dryrun=args.dryrun)" in cli
    assert "dag_api.delete_output(only_temp=True, dryrun=args.dryrun)" in cli
    api = inspect.getsource(snakemake.api.DAGApi.delete_output)
    assert "self.workflow_api._workflow.delete_output(only_temp=only_temp, dryrun=dryrun)" in api

    calls = []

    class Workflow:
        def delete_output(self, only_temp=False, dryrun=False):
            calls.append(("delete", only_temp, dryrun))

    @contextmanager
    def guard(dryrun):
        calls.append(("guard", dryrun))
        yield
        calls.append(("after", dryrun))

    workflow = Workflow()
    smk.guard_deletes(workflow, guard)
    workflow.delete_output(only_temp=True, dryrun=False)
    assert calls == [("guard", False), ("delete", True, False), ("after", False)]
