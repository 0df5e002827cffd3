"""awsapi."""
