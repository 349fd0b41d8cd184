"""Input and output safety checks: PII masking, lexicons, refusals, and the pipeline that runs them."""
