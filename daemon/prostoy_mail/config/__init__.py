"""Configuration: model (values), load (strict reading), edit (comment-keeping writes)."""
