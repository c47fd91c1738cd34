"""The generated stubs (simulator_pb2, simulator_pb2_grpc), made from proto/ at build time."""
