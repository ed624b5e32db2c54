"""What a report is written as: Markdown and self-contained HTML (render), PNG plots (plots), the report
directory (write), and the page opened in headless Chromium (browser)."""
