"""Configuration of the protein network, with MultiFlow's ``model:`` key names.

The nested dataclasses mirror the ``model:`` section of MultiFlow's ``config.yaml``
(``node_features``, ``edge_features``, ``ipa``), so a released config maps onto them one to one
(:meth:`ProteinNetworkConfig.from_multiflow`) and :meth:`ProteinNetworkConfig.to_dict` writes the
same layout back. Keys that MultiFlow's forward never reads (``max_num_res``, ``timestep_int``,
``relpos_k``, ``single_bias_transition_n``, ``self_condition``, ``symmetric``) are accepted and
ignored.

Configs: ``multiflow`` (the released ``pdb_codesign`` sizes, 21.79 M parameters, 713 tensors) and
``small`` (440,429 parameters: node 64, edge 32, 4 blocks; trains on a 2-core CPU).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Mapping

from structures.proteins.residue_constants import NUM_TOKENS

# MultiFlow keys read by nothing in the forward pass: accepted, ignored.
IGNORED_KEYS = frozenset({"max_num_res", "timestep_int", "relpos_k", "single_bias_transition_n",
                          "self_condition", "symmetric"})


@dataclass(frozen=True)
class NodeFeaturesConfig:
    """Node embedding: residue-index, diffuse-mask, three time embeddings, amino acid, sc logits."""

    c_s: int = 256
    c_pos_emb: int = 128
    c_timestep_emb: int = 128
    embed_aatype: bool = True
    use_mlp: bool = True
    embed_chain: bool = False
    aatype_pred_num_tokens: int = NUM_TOKENS

    @property
    def in_features(self) -> int:
        """Width of the concatenated node features: pos + 1 + 2 t (+ c_s + t + tokens with aatypes)."""
        n = self.c_pos_emb + 2 * self.c_timestep_emb + 1
        if self.embed_aatype:
            n += self.c_s + self.c_timestep_emb + self.aatype_pred_num_tokens
        return n


@dataclass(frozen=True)
class EdgeFeaturesConfig:
    """Edge embedding: node pairs, relative position, two distograms, diffuse-mask pairs."""

    c_s: int = 256
    c_p: int = 128
    feat_dim: int = 64
    num_bins: int = 22
    embed_chain: bool = False
    embed_diffuse_mask: bool = True

    @property
    def in_features(self) -> int:
        """Width of the concatenated edge features: 3 feat_dim + 2 num_bins (+ 2 diffuse-mask pair)."""
        return 3 * self.feat_dim + 2 * self.num_bins + (2 if self.embed_diffuse_mask else 0)


@dataclass(frozen=True)
class IPAConfig:
    """Trunk: IPA sizes, the per-block sequence transformer and the number of blocks."""

    c_s: int = 256
    c_z: int = 128
    c_hidden: int = 16
    no_heads: int = 8
    no_qk_points: int = 8
    no_v_points: int = 12
    seq_tfmr_num_heads: int = 4
    seq_tfmr_num_layers: int = 4
    num_blocks: int = 8
    dropout: float = 0.0


@dataclass(frozen=True)
class ProteinNetworkConfig:
    """The whole network (MultiFlow ``FlowModel``); see the module docstring for the key names."""

    node_embed_size: int = 256
    edge_embed_size: int = 128
    aatype_pred: bool = True
    aatype_pred_num_tokens: int = NUM_TOKENS
    transformer_dropout: float = 0.2
    node_features: NodeFeaturesConfig = field(default_factory=NodeFeaturesConfig)
    edge_features: EdgeFeaturesConfig = field(default_factory=EdgeFeaturesConfig)
    ipa: IPAConfig = field(default_factory=IPAConfig)
    # the motif input of the amortised motif method (issue 24; FrameFlow's motif scaffolding, Yim et al. 2024): absent
    # in MultiFlow's network (its released checkpoints load unchanged); zero-initialised when added
    motif_input: bool = False

    def __post_init__(self) -> None:
        n, e, i = self.node_features, self.edge_features, self.ipa
        problems = []
        if not (n.c_s == e.c_s == i.c_s == self.node_embed_size):
            problems.append(f"node sizes differ (node_embed_size {self.node_embed_size}, node_features.c_s "
                            f"{n.c_s}, edge_features.c_s {e.c_s}, ipa.c_s {i.c_s})")
        if not (e.c_p == i.c_z == self.edge_embed_size):
            problems.append(f"edge sizes differ (edge_embed_size {self.edge_embed_size}, edge_features.c_p "
                            f"{e.c_p}, ipa.c_z {i.c_z})")
        if n.embed_chain or e.embed_chain:
            problems.append("embed_chain=true (multi-chain embeddings) is not supported")
        if n.aatype_pred_num_tokens != self.aatype_pred_num_tokens:
            problems.append("node_features.aatype_pred_num_tokens differs from aatype_pred_num_tokens")
        if self.node_embed_size % i.seq_tfmr_num_heads or n.c_timestep_emb % 2 or n.c_pos_emb % 2:
            problems.append("node_embed_size must divide by seq_tfmr_num_heads; embedding sizes must be even")
        if problems:
            raise ValueError("invalid protein network config: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        """Nested dict with MultiFlow's ``model:`` key names (JSON / YAML serialisable)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ProteinNetworkConfig":
        """Inverse of :meth:`to_dict`; also reads MultiFlow's ``model:`` section (see module docstring)."""
        return cls.from_multiflow(d)

    @classmethod
    def from_multiflow(cls, model: Mapping[str, Any]) -> "ProteinNetworkConfig":
        """Config from MultiFlow's resolved ``model:`` mapping. Unknown keys raise ``ValueError``."""
        sub = {"node_features": NodeFeaturesConfig, "edge_features": EdgeFeaturesConfig, "ipa": IPAConfig}
        kwargs: dict[str, Any] = {}
        for key, value in model.items():
            if key in sub:
                kwargs[key] = _build(sub[key], value, f"model.{key}")
            elif key not in IGNORED_KEYS:
                kwargs[key] = value
        return _build(cls, kwargs, "model")

    @property
    def num_blocks(self) -> int:
        return self.ipa.num_blocks


def _build(kind: type, values: Mapping[str, Any] | Any, where: str) -> Any:
    if isinstance(values, kind):
        return values
    if not isinstance(values, Mapping):
        raise ValueError(f"{where}: expected a mapping, got {type(values).__name__}")
    known = {f.name for f in fields(kind)}
    unknown = sorted(k for k in values if k not in known and k not in IGNORED_KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return kind(**{k: v for k, v in values.items() if k in known})


def scaled_config(node: int, edge: int, *, pos_emb: int, time_emb: int, feat_dim: int, ipa: IPAConfig,
                  dropout: float = 0.2) -> ProteinNetworkConfig:
    """A co-design config (aatype embedding + head, MLP features) with the given widths."""
    ipa = replace(ipa, c_s=node, c_z=edge)
    return ProteinNetworkConfig(
        node_embed_size=node, edge_embed_size=edge, transformer_dropout=dropout,
        node_features=NodeFeaturesConfig(c_s=node, c_pos_emb=pos_emb, c_timestep_emb=time_emb),
        edge_features=EdgeFeaturesConfig(c_s=node, c_p=edge, feat_dim=feat_dim), ipa=ipa)


CONFIGS: dict[str, ProteinNetworkConfig] = {
    # MultiFlow's released pdb_codesign model (configs/model.yaml + pdb_codesign.yaml): 21.79 M parameters
    "multiflow": ProteinNetworkConfig(),
    # trains on a 2-core CPU: 4 blocks, node 64 / edge 32
    "small": scaled_config(64, 32, pos_emb=32, time_emb=32, feat_dim=16, dropout=0.1,
                           ipa=IPAConfig(c_hidden=16, no_heads=4, no_qk_points=4, no_v_points=8,
                                         seq_tfmr_num_heads=4, seq_tfmr_num_layers=1, num_blocks=4)),
}


def preset_name(cfg: ProteinNetworkConfig) -> str | None:
    """The preset of :data:`CONFIGS` that ``cfg`` is, ``"<preset>+motif"`` with a motif input, else None."""
    plain = replace(cfg, motif_input=False)
    name = next((k for k, v in CONFIGS.items() if v == plain), None)
    return None if name is None else name + ("+motif" if cfg.motif_input else "")

