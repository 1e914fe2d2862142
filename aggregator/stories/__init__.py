"""Events across outlets and days: how a day's count compares with its recent baseline."""
