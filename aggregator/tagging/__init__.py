"""Country and security-topic tagging: pure code over a taxonomy kept as data in defaults/taxonomy/.

    taxonomy = load_taxonomy()
    tags = tag_post(TagInput(title=..., text=...), taxonomy)

Every tag carries its evidence (matched phrases with offsets), so a wrong tag can be traced to the rule
that made it and fixed in the taxonomy files rather than in code.
"""

from aggregator.tagging.records import Evidence, Tag, TagInput
from aggregator.tagging.tagger import tag_post
from aggregator.tagging.taxonomy import Taxonomy, load_taxonomy

__all__ = ["Evidence", "Tag", "TagInput", "Taxonomy", "load_taxonomy", "tag_post"]
