"""The mask policies' one wording (ablate.mask.policies): each policy's description is the one
fact the schema, the guide, config/README and the command-line help quote."""

from __future__ import annotations

from pathlib import Path

from ablate.core.config import config_schema
from ablate.mask import policies

ROOT = Path(__file__).resolve().parents[2]


def test_policy_wording_is_one_fact():
    """Each policy's one-line description is policies.POLICY_DESCRIPTIONS; the schema, the user guide
    and config/README quote it, and the misleading old wording ("no causal mask while the prompt is
    encoded", which reads as prefix_bidir) is gone from every place that names the policies."""
    assert set(policies.POLICY_DESCRIPTIONS) == set(policies.POLICIES)
    described = config_schema()["$defs"]["policy"]["description"]
    guide = (ROOT / "docs/guide.md").read_text()
    config_readme = (ROOT / "config/README.md").read_text()
    for policy, text in policies.POLICY_DESCRIPTIONS.items():
        assert f"{policy}: {text}" in described, policy
        assert f"| `{policy}` | {text} |" in guide, policy
    assert f"`prefill_bidir`: {policies.POLICY_DESCRIPTIONS['prefill_bidir']}" in config_readme
    assert "multi-token" in policies.POLICY_DESCRIPTIONS["prefill_bidir"]
    for doc in ["README.md", "docs/guide.md", "config/README.md", "workflow/report/workflow.rst"]:
        text = (ROOT / doc).read_text()
        assert "while the prompt is encoded" not in text, doc
        assert "removes the causal mask during prefill" not in text, doc
    assert policies.policy_help().count(": ") >= len(policies.POLICIES)
