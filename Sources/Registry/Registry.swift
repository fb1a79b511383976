public enum RegistryModule {}
