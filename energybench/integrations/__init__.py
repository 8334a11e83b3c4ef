"""Training-loop callbacks that record a train phase into an energybench run (optional extras:
``energybench[huggingface]``, ``energybench[lightning]``). Each imports its framework only when
used; nothing here measures by itself (:func:`energybench.measure` does)."""
