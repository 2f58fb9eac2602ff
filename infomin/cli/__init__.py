"""The core's commands, one module each: `main(argv=None)` parses the command line and calls the
library (`tools/<name>.py` and setup.py's console scripts call the same function).

convert_pretrained (infomin-convert-pretrained), model_zoo (infomin-model-zoo), estimate_mi
(infomin-estimate-mi), learn_views (infomin-learn-views).
"""
