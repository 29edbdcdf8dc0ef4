"""LLM providers behind one Protocol, and the fallback chain that is itself an LLM."""
