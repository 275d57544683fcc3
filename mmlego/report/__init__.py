"""mmlego.report: provenance, tables, figures and the self-contained HTML report."""
