"""leakage_probe: response loss under the policy vs causal on held-out SFT pairs."""
# placeholder until maskablate.leakage lands
