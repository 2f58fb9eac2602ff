"""The pretraining layer's commands, one module each: pretrain (infomin-pretrain), linear_eval
(infomin-linear-eval), view_sweep (infomin-view-sweep); `common` holds their shared flags."""
