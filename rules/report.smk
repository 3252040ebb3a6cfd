# The report's landing page (workflow/report/workflow.rst) shows the score plot itself:
# Snakemake's own `embeddedimage` directive runs docutils' Image.run before its embedding mixin
# (the mixin comes second in its bases), so it links the file, which a self-contained report
# cannot follow; this one reads the file into a data URI first.
from docutils.parsers.rst import directives
from docutils.parsers.rst.directives.images import Image
from snakemake.report.common import data_uri_from_file


class EmbeddedImage(Image):
    def run(self):
        self.arguments[0] = data_uri_from_file(self.arguments[0])
        return super().run()


directives.register_directive("embeddedimage", EmbeddedImage)

# The report's graph shows each rule once, by ablate.core.report_graph. Snakemake's keeps one
# node per rule and DAG level, so eval_model, whose jobs follow prepare_model and finetune,
# showed twice.
import snakemake.report.html_reporter as html_reporter
from ablate.core.report_graph import rulegraph_spec

html_reporter.rulegraph_spec = rulegraph_spec
