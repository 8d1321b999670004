"""Generated protobuf code of proto/ (package sparkctl.v1). Never edit by hand: `make proto`."""
