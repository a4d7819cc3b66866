"""Everything between a sandbox's commits and your branches: the review ledger, what can run code
on this machine, the review tools, the gate that `merge` and `pr` pass, and the pre-push check."""
