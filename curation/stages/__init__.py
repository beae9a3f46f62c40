"""The curation stages, one folder each; ``curation.core.registry`` maps YAML names onto them."""
