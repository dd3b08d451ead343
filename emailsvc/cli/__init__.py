"""The console scripts: emailsvc-client, -keygen, -spore and -settings."""
