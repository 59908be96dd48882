"""Status codes that exported module functions return, shared by the lowering that writes them and the
runtime that reads them (which imports no compiler)."""

UPDATE_APPLIED = 0.0  # apply_update: the step was taken
UPDATE_BAD_GRADIENTS = 1.0  # a gradient was NaN or infinite: nothing changed but the gradients, zeroed
UPDATE_BAD_PARAMETERS = 2.0  # the step would have made a parameter NaN or infinite: likewise
