"""Question recommendation (猜你想问): hot questions at the start of a session, related questions after an
answer, "did you mean" candidates for a vague question, ranked from precomputed neighbours and learned from use."""
