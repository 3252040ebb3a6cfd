"""docs/bridge.md quotes the bridge recipe's loss of the training step as it is: the quote and the
code cannot drift apart."""

from __future__ import annotations

import inspect
import re
import textwrap
from pathlib import Path

from ablate.bridge.training import recipe

DOC = Path(__file__).resolve().parents[2] / "docs" / "bridge.md"


def test_the_quoted_recipe_loss_is_the_code():
    quoted = re.search(
        r"the loss, `recipe\.TranslatorRecipe\.loss` as it is:\n\n```python\n(.*?)```",
        DOC.read_text(),
        re.S,
    )
    assert quoted, "docs/bridge.md lost its quote of recipe.TranslatorRecipe.loss"
    assert quoted.group(1) == textwrap.dedent(inspect.getsource(recipe.TranslatorRecipe.loss))
