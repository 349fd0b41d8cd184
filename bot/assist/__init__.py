"""Human handoff and operator assist: the handoff queue, the operator console, suggestions, summaries,
and the conversation archive."""
