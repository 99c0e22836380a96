"""How a domain-adaptation feature extractor answers the domain classifier (`model.invariance`,
picked through the config's _target_ genrun.losses.invariance.${model.invariance}):
- `reversal` (Ganin & Lempitsky 2015): a gradient-reversal layer, in one joint update with both
  classifiers: the features receive -lambda_p times the domain loss's gradient, i.e. they maximise
  the domain cross-entropy;
- `marginal` (Feutry et al. 2018): the features bring the domain classifier's cross-entropy to that
  of the domains' marginal (what a classifier that learnt nothing scores) instead of maximising it,
  which a classifier satisfies by being confidently wrong (the features then carry the domain in
  reverse); in a phase of their own, the domain classifier frozen;
- `none`: no domain term (source only); the domain classifier still trains, to show how well the
  domains can be told apart.
"""

from __future__ import annotations

from torch import Tensor

from genrun.losses.domain import binary_entropy, domain_cross_entropy


class Reversal:
    """Ganin & Lempitsky 2015: the features maximise the domain cross-entropy, through a gradient-reversal
    layer in one update with the classifiers (`joint`)."""

    joint = True

    def encoder_term(self, logits: Tensor, domains: Tensor) -> Tensor:
        """What the reversed gradient descends: minus the domain cross-entropy."""
        return -domain_cross_entropy(logits, domains)


class Marginal:
    """Feutry et al. 2018: the features minimise |CE(q(d | f), d) - H(p(d))|, the gap between the domain
    classifier's cross-entropy and the marginal's (log 2 for batches half source, half target): zero when
    the classifier can do no better than the marginal, and no reward for making it confidently wrong."""

    joint = False

    def encoder_term(self, logits: Tensor, domains: Tensor) -> Tensor:
        marginal = binary_entropy(domains.float().mean())
        return (domain_cross_entropy(logits, domains) - marginal).abs()


class SourceOnly:
    """No domain term: the features learn the source labels alone (the baseline)."""

    joint = False

    def encoder_term(self, logits: Tensor, domains: Tensor) -> Tensor:
        return 0.0 * logits.sum()


# the names `model.invariance` takes (the config's _target_ is genrun.losses.invariance.${model.invariance})
reversal, marginal, none = Reversal, Marginal, SourceOnly
