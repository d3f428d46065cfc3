"""Policy pack entry point: `pulumi preview --policy-pack policy` enforces these guardrails."""

from guardrails import POLICIES
from pulumi_policy import PolicyPack

PolicyPack(name="thanos-multi-cluster-guardrails", policies=POLICIES)
