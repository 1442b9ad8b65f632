"""Property-based tests (hypothesis): random small spiking networks, checked for spike-for-spike
equivalence across PyTorch, the reference simulators and Lava, and for exact counts.

Budgets follow the hypothesis profile: ``ci`` (default, fixed seed) or ``fuzz``
(``HYPOTHESIS_PROFILE=fuzz``, ``make fuzz``); see :mod:`tests.property.profiles`.
"""
