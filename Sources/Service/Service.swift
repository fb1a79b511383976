import Model
public enum ServiceModule {}
