"""mmlego.evaluation: metrics (:mod:`.metrics`) and the long metrics table (:mod:`.evaluate`)."""
