"""mmlego.report: provenance, figures and the self-contained HTML report."""
