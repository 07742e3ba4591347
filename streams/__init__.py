"""Stream processing: the faust app, its agents, sinks, metrics and web views."""
