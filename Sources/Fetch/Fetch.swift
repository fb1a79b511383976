public enum FetchModule {}
