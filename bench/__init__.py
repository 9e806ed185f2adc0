"""flowstage's benchmark harness: each bench module measures one thing against a baseline in the same run."""
