"""The one-command InfoMin study: built-in data -> pretraining -> conversion -> Detectron2
fine-tuning -> evaluation -> report.

The top layer of the project: it uses `infomin.pretrain` and `infomin.detection`, neither of
which imports it. `run` holds the stages and their order, `report` the tables and plots, `cli.demo`
the command line.
"""
