"""Tasks that pipelines may run on Ray: the test kit and the example agents."""
