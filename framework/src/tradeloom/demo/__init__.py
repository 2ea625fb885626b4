"""The shipped demo deployment (`tradeloom demo`)."""
