"""Research statistics: how much of a backtest result survives the search that produced it."""
