pytest_plugins = ["{{ cookiecutter.package_name }}.testing.plugin"]
