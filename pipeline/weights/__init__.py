"""Model files the stages load: the Swin-tiny weights of the tokens stage (specs, provenance, the HF->timm filter) and the BlazeFace model of the faces stage."""
