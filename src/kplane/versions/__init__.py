"""Kubernetes version data and the KEP-4330 rules built on it.

Data files (``data/``, each names its upstream sources):
  - ``feature-gates.yaml``: every gate of kube-apiserver / kube-controller-manager / kube-scheduler with its
    versioned stage history and the binary levels (1.31-1.36) that know it;
  - ``api-versions.yaml``: built-in group/versions and kinds with their lifecycle (introduced / removed);
  - ``removed-apis.yaml``: API versions removed since 1.16 and their replacements;
  - ``builtin-resources.yaml``: the built-ins kplane implements, with the levels it serves them at.

Public API (minor versions are ints: 34 means 1.34):
  - :mod:`kplane.versions.compat`: ``effective_version(binary, emulated_flag=None, min_compat_flag=None)
    -> EffectiveVersion(binary, emulated, min_compat)`` (raises ``CompatibilityError``, a ``ValueError``, with
    upstream's texts); ``emulation_floor(binary)``; ``default_min_compat(binary, emulated)``;
    ``parse_version_flag(flag, value) -> int | None``; ``MIN_COMPAT_FLAG_SINCE`` (35).
  - :mod:`kplane.versions.gates`: ``all_gates() -> Mapping[str, Gate]`` (``Gate.history``: tuple of
    ``GateSpec(since, default, stage, locked)``, ``Gate.binaries``, ``Gate.known_to(binary)``);
    ``gate_spec_at(history, minor)``; ``state_at(gate, emulated, override=None) -> GateState``;
    ``resolve_gates(binary, emulated, min_compat, overrides=None) -> Mapping[str, GateState]`` (upstream
    errors for unknown / locked / PreAlpha gates); ``parse_feature_gates("A=true,B=false")``.
  - :mod:`kplane.versions.apis`: ``kinds()`` (``KindLifecycle``: group, version, kind, plural, introduced,
    removed, ``exists_at(minor)``); ``served_kinds(emulated)``; ``served_group_versions(emulated)``;
    ``enabled_by_default(kind)``; ``storage_version(group, kind, emulated, min_compat)``; ``removed_apis()``
    (``RemovedApi``: removed_in, group, version, kinds, replacement, note); ``removed_between(current, target)``;
    ``removal_of(api_version, kind)``; ``version_priority(version)``.
  - :mod:`kplane.versions.profile`: ``load_profile(kube_version, emulated_version=None,
    min_compatibility_version=None, feature_gates="") -> VersionProfile`` with ``minor`` (binary),
    ``emulated``, ``min_compat``, ``resources`` (served at the emulated level, storage versions set for the
    min-compatibility level), ``feature_gates`` (name → enabled), ``gates`` (name → ``GateState``) and
    ``version_info()`` (the ``/version`` body).
"""
